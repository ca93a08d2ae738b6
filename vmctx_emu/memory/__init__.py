"""Context memory: allocation, emulated instances, flag words, numpy views and the C bridge."""
