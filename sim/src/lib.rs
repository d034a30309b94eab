//! kubedst-sim: the deterministic engine. Knows nothing of Kubernetes.
