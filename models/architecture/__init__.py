"""Network builders: what the networks are, not how they are run.

- ``cellnet``: the stage-1 network of Kimura et al. 2019 Fig. 5 (``build_cellnet``).
- ``akira``: the AKIRA decreased-granules regressor of Mori et al. 2020 (``build_akira``).
- ``losses``: the stage-1 losses, registered Keras objects saved inside ``cellnet.keras``.
"""
