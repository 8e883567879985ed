"""Lambda entry points: thin wrappers that set up Powertools and call one domain function."""
