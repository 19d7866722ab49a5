"""The training harness: config resolvers, logger/callback instantiation, atomic checkpoints, summaries."""
