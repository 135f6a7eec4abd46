"""Apache Airflow provider for Ethernity Cloud confidential compute."""

__version__ = "0.1.0"
