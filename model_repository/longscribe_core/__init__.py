"""Pure code shared by the Triton models and the orchestrator.

Nothing here imports triton_python_backend_utils, so all of it is unit-tested
without a server.
"""
