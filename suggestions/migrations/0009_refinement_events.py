# Refinement chips: where an impression or click was shown, and searches started from a chip.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('shop_suggestions', '0008_synonyms'),
    ]

    operations = [
        migrations.AddField(
            model_name='suggestionclick',
            name='surface',
            field=models.CharField(choices=[('typeahead', 'Typeahead'), ('refinements', 'Refinement chips of a results page')], default='typeahead', help_text='Where the suggestion was chosen: the typeahead or a refinement chip of a results page.', max_length=16),
        ),
        migrations.AddField(
            model_name='suggestionimpression',
            name='surface',
            field=models.CharField(choices=[('typeahead', 'Typeahead'), ('refinements', 'Refinement chips of a results page')], default='typeahead', help_text='Where the list was shown: the typeahead (prefix: what was typed) or the refinement chips of a results page (prefix: the searched query).', max_length=16),
        ),
        migrations.AlterField(
            model_name='searchevent',
            name='origin',
            field=models.CharField(choices=[('typed', 'Typed'), ('suggestion', 'Chosen from suggestions'), ('history', 'Chosen from own recent searches'), ('refinement', 'Chosen from refinement chips')], default='typed', help_text='How the search was started.', max_length=16),
        ),
    ]
