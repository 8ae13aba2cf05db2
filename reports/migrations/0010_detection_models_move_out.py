"""Hash banks, matches, the lexicon, blocked links, detections and the ban-evasion list move to
the detection app (issue 15): state only."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('reports', '0009_detection_timeouts_ban_evasion_seen'),
    ]

    # The models move to the detection app (detection/0001_initial): their tables stay where they
    # are, so this only forgets them in reports' state; no table or row is touched.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
        migrations.RemoveField(
            model_name='banevasionidentifier',
            name='source_case',
        ),
        migrations.DeleteModel(
            name='BlockedLink',
        ),
        migrations.RemoveField(
            model_name='detection',
            name='case',
        ),
        migrations.RemoveField(
            model_name='detection',
            name='item',
        ),
        migrations.RemoveField(
            model_name='detection',
            name='report',
        ),
        migrations.RemoveField(
            model_name='detection',
            name='reviewed_by',
        ),
        migrations.RemoveField(
            model_name='hashentry',
            name='bank',
        ),
        migrations.RemoveField(
            model_name='hashmatch',
            name='entry',
        ),
        migrations.RemoveField(
            model_name='hashmatch',
            name='item',
        ),
        migrations.RemoveField(
            model_name='historicalblockedlink',
            name='history_user',
        ),
        migrations.RemoveField(
            model_name='historicallexiconterm',
            name='history_user',
        ),
        migrations.DeleteModel(
            name='LexiconTerm',
        ),
        migrations.DeleteModel(
            name='BanEvasionIdentifier',
        ),
        migrations.DeleteModel(
            name='Detection',
        ),
        migrations.DeleteModel(
            name='HashBank',
        ),
        migrations.DeleteModel(
            name='HashEntry',
        ),
        migrations.DeleteModel(
            name='HashMatch',
        ),
        migrations.DeleteModel(
            name='HistoricalBlockedLink',
        ),
        migrations.DeleteModel(
            name='HistoricalLexiconTerm',
        ),
            ],
            database_operations=[],
        ),
    ]
