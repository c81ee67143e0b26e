"""PyTorch's bf16 and f32 products (oneDNN; AMX where the CPU has it) on gemm_bf16's shapes.

    python benches/torch_gemm.py --rows 512 [--threads 2]
"""
import argparse
import time

import torch

SHAPES = [
    ("qwen2.5-0.5b", "q", 896, 896),
    ("qwen2.5-0.5b", "gate/up", 4864, 896),
    ("qwen2.5-0.5b", "down", 896, 4864),
    ("qwen2.5-1.5b", "q", 1536, 1536),
    ("qwen2.5-1.5b", "gate/up", 8960, 1536),
    ("qwen2.5-1.5b", "down", 1536, 8960),
]


def best(f):
    f()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| model | product | m x n x k | torch bf16 GFLOP/s | torch f32 GFLOP/s |")
    print("|---|---|---|---:|---:|")
    for model, name, n, k in SHAPES:
        flops = 2 * a.rows * n * k / 1e9
        x = torch.randn(a.rows, k)
        lin = torch.nn.Linear(k, n, bias=False)
        with torch.inference_mode():
            f32 = best(lambda: lin(x))
            lin_b = lin.to(torch.bfloat16)
            xb = x.to(torch.bfloat16)
            b16 = best(lambda: lin_b(xb))
        print(f"| {model} | {name} | {a.rows} x {n} x {k} | {flops / b16:.0f} | {flops / f32:.0f} |")


if __name__ == "__main__":
    main()
