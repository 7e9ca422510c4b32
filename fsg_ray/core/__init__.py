"""The method itself, pure PyTorch: networks, losses (Eqs. 2-5, 7), Algorithm 1, baselines,
metrics, tensor transforms and the Ray-free inference core. No Ray, boto3 or pyarrow import:
weights come in as tensors or bytes."""
