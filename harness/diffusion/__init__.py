"""The diffusion core: conventions, step schedules, the causal sampler, the KV cache, the Backbone protocol."""
