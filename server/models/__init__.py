"""Models: named profiles from settings, the backends they load, and how each task is routed to them.

`ModelRegistry` (registry.py) is the one place a backend is built from settings, for the server, the worker
and every CLI command. `Router` (router.py) orders a task's profiles: its route's primary and fallbacks,
rules by input size and sensitivity, a circuit breaker per profile and the budgets (usage.py). Remote
profiles get personal data masked before text leaves the machine (privacy.py). The result cache
(cache.py) answers a repeated request from lineage. `deskpilot models` (cli.py) manages profiles;
hub.py pulls GGUF files from the Hugging Face Hub.
"""
