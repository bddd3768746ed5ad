"""The dictionary's activation collection on a tiny random-init network, run by tests/test_dictionary.py under
`torchrun --nproc-per-node 2` (to shard it) or alone, writing what rank 0 collected to OUT.

    python tests/dictionary_worker.py OUT IMAGES
"""
import argparse
import os

import torch

from featviz_testing import tiny_model

from featviz.concepts.dictionary import collect_samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("images")
    args = parser.parse_args()
    torch.set_num_threads(1)
    vectors, layout = collect_samples(tiny_model(size=32), "2", args.images, size=32, batch_size=2)
    if int(os.environ.get("RANK", "0")) == 0:
        torch.save({"vectors": vectors, "layout": layout, "world": int(os.environ.get("WORLD_SIZE", "1"))}, args.out)


if __name__ == "__main__":
    main()
