from django.db import migrations, models


def seed(apps, schema_editor):
    Order = apps.get_model("orders", "Order")
    Order.objects.bulk_create(Order(customer=f"customer {i}", total_cents=i * 1250) for i in range(1, 11))


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Order",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("customer", models.CharField(max_length=100)),
                ("total_cents", models.IntegerField()),
            ],
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
