"""The peers Firefly is measured against, each run from its own virtualenv (bench/.venvs)."""
