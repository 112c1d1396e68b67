"""Triggers: the async waits behind deferrable Akool operators and sensors."""
