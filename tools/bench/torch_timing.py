"""Event timing shared by the torch peer scripts (peers only: nothing in longbow uses PyTorch)."""
import torch


def time_ms(fn, reps=10, inner=5):
    """Median over `reps` CUDA-event-timed samples of `inner` back-to-back calls, in ms per call,
    after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        stop.record()
        stop.synchronize()
        samples.append(start.elapsed_time(stop) / inner)
    samples.sort()
    return samples[len(samples) // 2]
