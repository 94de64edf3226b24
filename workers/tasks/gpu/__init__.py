"""Tasks routed to the `gpu` queue (generation, training, evaluation): one at a time per GPU worker."""
