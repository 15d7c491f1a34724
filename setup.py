"""Installs the lsm packages: pipeline, trainer, schemas, and their console scripts.

Dataflow workers install the same package through --setup_file, so keep the
install_requires here to what the pipeline's workers need at run time.
"""

import setuptools

setuptools.setup(
    name="lsm",
    version="0.1.0",
    description="Large Sensor Model: a Beam data pipeline and a JAX trainer for "
                "wearable-sensor foundation models",
    python_requires=">=3.11",
    packages=setuptools.find_packages(include=["schemas", "schemas.*", "pipeline",
                                               "pipeline.*", "trainer", "trainer.*"]),
    package_data={"trainer": ["configs/*.py"]},
    install_requires=[
        "apache-beam[gcp]>=2.77,<3",
        "tensorflow-transform>=1.21,<2",
        "tfx-bsl>=1.21,<2",
        "array_record>=0.8.6",
        "numpy>=2",
        "pyarrow",
        "pandas",
        "google-crc32c",
    ],
    entry_points={
        "console_scripts": [
            "lsm-synth=pipeline.synthetic.main:main",
            "lsm-pipeline=pipeline.main:cli",
            "lsm-train=trainer.main:main",
            "lsm-eval=trainer.evaluate:main",
            "lsm-scaling=trainer.scaling:main",
            "lsm-impute=trainer.impute:main",
            "lsm-embed=trainer.impute:embed_main",
        ],
    },
)
