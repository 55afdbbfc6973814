from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []
    operations = [
        migrations.CreateModel(
            name="Topic",
            fields=[("id", models.AutoField(primary_key=True, serialize=False)), ("name", models.CharField(max_length=50))],
        ),
        migrations.CreateModel(
            name="Post",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("title", models.CharField(max_length=200)),
                ("topics", models.ManyToManyField(blank=True, to="testapp.topic")),
            ],
        ),
        migrations.CreateModel(
            name="Comment",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("text", models.TextField()),
                ("post", models.ForeignKey(on_delete=models.deletion.CASCADE, to="testapp.post")),
            ],
        ),
    ]
