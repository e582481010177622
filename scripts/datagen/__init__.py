"""The generators of the course's datasets, one module each; scripts/make_datasets.py runs them.

    common.py      the seed, phrase files, hash picks and the near-duplicate guard they share
    polite.py      curt request -> polite rewrite           (words in polite.json)
    bugfix.py      function with one bug -> fixed function  (templates in bugfix.json)
    python_qa.py   conversations about Python               (concepts in python_qa.json)
    dirty.py       polite/train with planted problems, and their manifest (filler in dirty.json)

Each dataset module's `make()` returns {"train": records, "test": records} (dirty's takes the
polite training records it copies); the code is here, the words and templates are in the .json
file of the same name.
"""
