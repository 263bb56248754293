"""ninv's shared core: settings, wire schemas, the job model and the job store."""
