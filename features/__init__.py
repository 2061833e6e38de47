"""matchwijs features: the data contract, loading, point-in-time pair features and outcome labels."""
