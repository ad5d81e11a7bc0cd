from django.core.management.base import BaseCommand, CommandError

from orders import tasks
from orders.models import Order


class Command(BaseCommand):
    help = "Places orders and has workers fulfil them; --charge and --refund add those tasks."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int)
        parser.add_argument("--charge", action="store_true", help="also charge each order (retried once)")
        parser.add_argument("--refund", action="store_true", help="also refund each order (always fails)")

    def handle(self, count, charge, refund, **options):
        if count < 0:
            raise CommandError(f"count must be >= 0, not {count}")
        for _ in range(count):
            order = Order.objects.create(customer="batch", total_cents=500)
            tasks.fulfil_order.delay(order.id)
            if charge:
                tasks.charge_card.delay(order.id)
            if refund:
                tasks.refund.delay(order.id)
        self.stdout.write(f"placed {count} orders; {Order.objects.count()} in total")
