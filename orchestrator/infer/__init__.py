"""Step 3, inference: the Triton client pool, replicas found by DNS, the managed `tritonserver`, and chunk slots."""
