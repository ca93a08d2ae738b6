"""Each release's runtime behaviour over flag words: host calls, post-return, fused adapters."""
