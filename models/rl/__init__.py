"""Online RL's pure pieces: advantage estimators, policy/value losses, KL estimators and controllers, reward
shaping (InstructGPT's N+ details). Tensors in, tensors out; every one is tested against hand-computed values."""
