"""One service per public task: embeddings, classify, images, rerank, v2."""
