from django.urls import path
from orders import views

urlpatterns = [
    path("health/", views.health),
    path("orders/", views.orders),
    path("orders/<int:pk>/", views.order_detail),
    path("orders/<int:pk>/receipt/", views.receipt),
    path("customers/", views.customers),
    path("slow/", views.slow),
    path("fail/", views.fail),
    path("call-downstream/", views.call_downstream),
    path("orders/in-transaction/", views.place_in_transaction),
    path("reports/", views.reports),
]
