"""Launch scripts for Dataflow and Cloud TPU; each prints what it runs (--dry-run: only prints)."""
