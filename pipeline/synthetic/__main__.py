"""python -m pipeline.synthetic: the lsm-synth command."""

from pipeline.synthetic.main import main

main()
