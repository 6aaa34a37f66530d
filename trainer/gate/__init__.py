"""The gate: which rows judge a new version, how it is scored, and the rule it must pass to serve."""
