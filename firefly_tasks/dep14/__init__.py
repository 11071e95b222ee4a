"""Firefly under Django's Tasks framework (DEP 14): the framework's names, the results it reads
and the tasks it runs. ``firefly_tasks.backends.FireflyBackend`` is the backend itself."""
