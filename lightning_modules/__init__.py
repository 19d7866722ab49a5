"""One LightningModule per method family; components/, losses/ and metrics/ hold plain modules."""
