"""One contract suite per seam, each run over every implementation of that seam (as huey runs one
storage suite over all its storages).

A module here is named after its seam and parametrizes one fixture over the implementations: the fake
that unit tests use (tier `unit`) and the real ones (`integration` when they run on this machine in a
moment, `model` when they load weights). A new implementation joins a seam by adding a param; it is done
when the suite passes for it.

- test_backend.py: `inference.Backend` over ScriptedBackend and LlamaCppBackend.
- test_embedder.py: `indexes.Embedder` over HashEmbedder and SentenceTransformerEmbedder.
- test_vectors.py: `indexes._vectors.VectorSearch` over VectorIndex, exact and HNSW.
- test_queue.py: `server.core.queue.TaskQueue` over Huey's MemoryHuey and SqliteHuey.
- test_workflow_ai.py: `server.workflows.ai.WorkflowAI` over ScriptedAI and ModelAI (on the scripted
  backend and on llama.cpp).
- test_action_adapters.py: `server.actions._types.ActionAdapter` over FakeAdapter and the five real
  adapters against their receivers.
- test_graph_transport.py: `server.connectors.graph.GraphTransport` over GraphClient against the Graph
  stand-in.
"""
