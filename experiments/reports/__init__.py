"""Custom report writers of reproduce recipes (`report: experiments.reports.<module>:<function>`)."""
