"""newsflow: the shared contract of the pipeline (wire schemas, settings, the stream loop, the CLI)."""

__version__ = "0.1.0"
