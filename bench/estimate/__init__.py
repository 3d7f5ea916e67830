"""bench.estimate: exact parameter accounting and a memory and FLOP model for any cell (config or meta device).

  inventory    every parameter as the run stores it (quantised, upcast, projected, materialised)
  analytic     the same inventory written down from the config for known decoders x methods (no torch)
  states       weights, gradients, optimizer states and step temporaries, in bytes
  activations  what autograd saves per token, tensor by tensor (Llama-style decoders; coarse otherwise)
  peak         when the components coexist: forward/backward vs optimizer-step peak, runtime on top
  flops        FLOPs per step, the time floor on a GPU, MFU
  predict      one cell's Prediction; preflight: the does-not-fit check bench.run makes
  gpus         the conf/gpu/ catalog; tables, sweep, calibrate and __main__: the command line
Assumptions and the CPU calibration: README.md beside this file. Nothing heavy is imported here.
"""
