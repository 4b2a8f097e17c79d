"""The commands: the mlr CLI, the guard, reproduce and the schema."""
