"""The reconcile loop: one cycle (engine), its locking and commit rounds (cycle), the daemon.
Imports edges/, plug-ins and everything below; never commands/ or the CLI."""
