"""longscribe's orchestrator: media URL -> macro chunks -> Triton -> transcript.

Packages follow the data's path, and each imports only from those before it
and from the shared bottom (`settings`, `errors`, `schemas`, `languages`,
`common`):

    media -> plan -> infer -> assemble -> formats      the steps
    pipeline                                            wires the steps for one request
    jobs                                                runs pipelines in the background
    api                                                 the HTTP edge
    cli                                                 the `longscribe` command (nothing imports it)
"""
