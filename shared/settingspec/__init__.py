"""Every app setting, declared once by concern (``data``, ``training``, ``platform``, ``evaluation``, ``serving``) with
default and meaning; ``shared.settings`` assembles them into ``SPEC`` and reads them. The README's configuration
table, ``local.settings.sample.json`` and the infrastructure test are checked against ``SPEC``."""
