"""Jobs: transcriptions run in the background by a fleet of workers sharing one Redis; watched by polling
or server-sent events, cancelled from any replica, resumed from per-chunk checkpoints, collected.

records (keys and shapes) < checkpoints, store < events, worker, webhooks; redis_server runs a local Redis.
"""
