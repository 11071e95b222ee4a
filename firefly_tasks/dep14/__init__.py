"""Firefly under Django's Tasks framework (DEP 14): the framework's names, the backend, the
results it reads and the tasks it runs. Settings name the backend by its public path,
``firefly_tasks.backends.FireflyBackend``."""
