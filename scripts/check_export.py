"""Checks a `twotower export` directory with real consumers: numpy loads the arrays, and
qdrant-client (local mode, offline) indexes the points and answers a query.

usage: python scripts/check_export.py EXPORT_DIR USER_KEY [K]
Prints the top-K candidate keys by numpy (all candidates) and by Qdrant (all candidates, Dot),
one per line as `numpy_key qdrant_key`; `recommend --include-seen -k K --user USER_KEY` must list
the same keys in the same order (ties aside).
"""
import json
import sys

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, PointStruct, VectorParams

directory, user = sys.argv[1], sys.argv[2]
k = int(sys.argv[3]) if len(sys.argv) > 3 else 10
candidates = np.load(f"{directory}/candidates.npy")
queries = np.load(f"{directory}/queries.npy")
keys = json.load(open(f"{directory}/candidate_keys.json"))
users = json.load(open(f"{directory}/query_keys.json"))
assert candidates.dtype == np.float32 and queries.dtype == np.float32
query = queries[users.index(user)]

scores = candidates.astype(np.float64) @ query.astype(np.float64)
by_numpy = [keys[r]["key"] for r in sorted(range(len(keys)), key=lambda r: (-scores[r], r))[:k]]

client = QdrantClient(":memory:")
client.create_collection("items", vectors_config=VectorParams(size=candidates.shape[1], distance=Distance.DOT))
points = [json.loads(line) for line in open(f"{directory}/qdrant_points.jsonl")]
client.upsert("items", [PointStruct(id=p["id"], vector=p["vector"], payload=p["payload"]) for p in points])
hits = client.query_points("items", query=query.tolist(), limit=k).points
by_qdrant = [hit.payload["key"] for hit in hits]

for a, b in zip(by_numpy, by_qdrant):
    print(a, b)
