"""Stage 2, the specification oracle: what each Keras line documents BinaryCrossentropy to compute.

``keras3`` and ``keras2`` are the two profiles, ``gradient`` their analytic derivatives, ``tolerance`` the
forward error bounds every expectation carries, ``profiles`` the choice of profile from the installed packages.

May import: the ground floor only.  Never TensorFlow or Keras, and nothing of a later stage.
"""
