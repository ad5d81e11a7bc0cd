from django.urls import path

from tasks_app import views

urlpatterns = [
    path("enqueue/<str:backend>/<str:name>/", views.enqueue),
    path("aenqueue/<str:backend>/<str:name>/", views.aenqueue),
    path("result/<str:backend>/<str:result_id>/", views.result),
]
