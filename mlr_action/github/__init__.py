"""Everything GitHub: the action's entry point, git, the forge, the pull request check."""
