"""amina-sync: KoBoToolbox → normalized SQL warehouse, for counter-trafficking programmes."""

__version__ = "0.1.0"
