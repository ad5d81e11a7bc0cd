import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
if os.environ.get("SHOP_OWN_TELEMETRY") == "1":  # the app's own telemetry, as the guides set it up
    from shop import telemetry

    telemetry.setup("web")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
