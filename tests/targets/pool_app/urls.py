from django.urls import path

from pool_app import views

urlpatterns = [path("pool/", views.pool)]
