"""The config: its resolvers and the validation of its values."""
