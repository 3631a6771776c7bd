"""Platform fixes and fast paths: small named patches of basicsr and gfpgan, native StyleGAN2 ops (a leaf that
imports nothing of ours), the allocator switch, ONNX export."""
