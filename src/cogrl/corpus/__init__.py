"""Behavior-curated continued-pretraining corpora: the paper's third intervention (Gandhi et al., 2025).

One concept per module, in pipeline order: `source` (a Hugging Face dataset read by shard, documents cut in
tokens), `prefilter` (the regex pass), `label` (the LLM judge), `select` (matched rich and minimal arms),
`rewrite` (question / thinking / answer, with a content check), `card` (the datasets and their cards);
`manifest` and `progress` keep the sharded stages resumable and visible; `pipeline` runs it all on Ray
Data. `cogrl corpus build` is the command; docs/corpus.md the guide.
"""
