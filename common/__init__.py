"""What every layer of amina-sync imports: the error hierarchy, logging set-up, GC pauses."""
