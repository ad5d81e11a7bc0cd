from django.urls import path
from orders import views

urlpatterns = [
    path("health/", views.health),
    path("orders/", views.orders),
    path("orders/<int:pk>/", views.order_detail),
    path("customers/", views.customers),
    path("slow/", views.slow),
    path("fail/", views.fail),
    path("call-downstream/", views.call_downstream),
    path("reports/", views.reports),
]
