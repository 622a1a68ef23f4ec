"""The demo clinics' education library: synthetic, original text written for the demo (not taken
from any publisher), in English and Spanish, for the demo's conditions and medications
(patients/demo.py CONDITIONS: SNOMED CT and RxNorm codes) and care-plan templates."""

from __future__ import annotations

from typing import Any

# key -> item fields and its versions {language: (title, summary, body html, video url)}
LIBRARY: dict[str, dict[str, Any]] = {
    "hypertension-what-to-expect": {
        "format": "article",
        "reading_level": "easy",
        "condition_codes": ["38341003", "59621000", "I10"],
        "medication_codes": ["314076"],
        "care_plan_templates": ["hypertension"],
        "versions": {
            "en": (
                "High blood pressure: what to expect",
                "What the next few months usually look like, and what you can do.",
                "<p>High blood pressure often has no symptoms. That is why your care team will check it "
                "regularly, even when you feel well.</p>"
                "<h2>In the first weeks</h2><ul><li>You may be asked to measure your blood pressure at home "
                "and write the numbers down.</li><li>If you start a medicine, take it at the same time every "
                "day. Some people feel a little dizzy at first: stand up slowly.</li></ul>"
                "<h2>Small steps that help</h2><ul><li>Less salt: taste food before adding any.</li>"
                "<li>A 20-minute walk most days.</li><li>Limit alcohol.</li></ul>"
                "<p><strong>Call us</strong> if you have a severe headache, chest pain or trouble "
                "speaking. In an emergency, call 911.</p>",
                "",
            ),
            "es": (
                "Presión arterial alta: qué esperar",
                "Cómo suelen ser los próximos meses y qué puede hacer usted.",
                "<p>La presión arterial alta muchas veces no da síntomas. Por eso su equipo de atención la "
                "revisará con frecuencia, aunque usted se sienta bien.</p>"
                "<h2>En las primeras semanas</h2><ul><li>Puede que le pidamos medir su presión en casa y "
                "anotar los números.</li><li>Si empieza un medicamento, tómelo a la misma hora cada día. "
                "Al principio algunas personas se marean un poco: levántese despacio.</li></ul>"
                "<h2>Pequeños pasos que ayudan</h2><ul><li>Menos sal: pruebe la comida antes de añadirla."
                "</li><li>Una caminata de 20 minutos casi todos los días.</li><li>Limite el alcohol.</li></ul>"
                "<p><strong>Llámenos</strong> si tiene un dolor de cabeza muy fuerte, dolor en el pecho o "
                "dificultad para hablar. En una emergencia, llame al 911.</p>",
                "",
            ),
        },
    },
    "home-blood-pressure-readings": {
        "format": "article",
        "reading_level": "standard",
        "condition_codes": ["38341003"],
        "medication_codes": [],
        "care_plan_templates": [],
        "versions": {
            "en": (
                "Taking your blood pressure at home",
                "Five habits for readings you and your care team can trust.",
                "<ol><li>Sit quietly for five minutes first, back supported, feet flat.</li>"
                "<li>Rest your arm on a table at heart level, cuff on bare skin.</li>"
                "<li>No coffee, smoking or exercise in the 30 minutes before.</li>"
                "<li>Take two readings a minute apart, morning and evening.</li>"
                "<li>Write down every reading, even the high ones, and bring the list to your visit.</li></ol>",
                "",
            ),
        },
    },
    "type-2-diabetes-what-to-expect": {
        "format": "article",
        "reading_level": "standard",
        "condition_codes": ["44054006", "E11"],
        "medication_codes": ["860975"],
        "care_plan_templates": ["t2dm"],
        "versions": {
            "en": (
                "Type 2 diabetes: what to expect",
                "The tests, the visits and the everyday habits of the first months.",
                "<p>Type 2 diabetes means your body has trouble using sugar from food. With a plan, most "
                "people keep it well under control.</p>"
                "<h2>Tests you will hear about</h2><ul><li><strong>HbA1c</strong>: a blood test that shows "
                "your average sugar over about three months. We usually repeat it every three months at "
                "first.</li><li>Yearly eye and foot checks.</li></ul>"
                "<h2>If you start metformin</h2><p>Take it with a meal. An upset stomach is common in the "
                "first weeks and usually settles.</p>"
                "<h2>Everyday habits</h2><ul><li>Regular meals, with vegetables filling half the plate."
                "</li><li>Movement you enjoy, most days.</li></ul>",
                "",
            ),
            "es": (
                "Diabetes tipo 2: qué esperar",
                "Los análisis, las visitas y los hábitos diarios de los primeros meses.",
                "<p>La diabetes tipo 2 significa que a su cuerpo le cuesta usar el azúcar de los alimentos. "
                "Con un plan, la mayoría de las personas la mantienen bajo control.</p>"
                "<h2>Análisis que va a escuchar</h2><ul><li><strong>HbA1c</strong>: un análisis de sangre "
                "que muestra su azúcar promedio de unos tres meses. Al principio solemos repetirlo cada tres "
                "meses.</li><li>Revisión de ojos y pies una vez al año.</li></ul>"
                "<h2>Si empieza metformina</h2><p>Tómela con una comida. Las molestias de estómago son "
                "comunes las primeras semanas y suelen pasar.</p>"
                "<h2>Hábitos diarios</h2><ul><li>Comidas regulares, con verduras en la mitad del plato."
                "</li><li>Actividad que le guste, casi todos los días.</li></ul>",
                "",
            ),
        },
    },
    "asthma-using-your-inhaler": {
        "format": "video",
        "reading_level": "easy",
        "condition_codes": ["195967001", "J45"],
        "medication_codes": ["745752"],
        "care_plan_templates": [],
        "versions": {
            "en": (
                "Using your inhaler (3-minute video)",
                "A short video on getting the medicine to your lungs.",
                "<p>Shake the inhaler, breathe out, seal your lips around the mouthpiece, press once as you "
                "start a slow deep breath, then hold your breath for ten seconds.</p>"
                "<p>Keep your reliever inhaler with you, and tell us if you need it more than twice a week.</p>",
                "https://video.example.org/demo/inhaler-technique",
            ),
            "es": (
                "Cómo usar su inhalador (video de 3 minutos)",
                "Un video corto para que el medicamento llegue a sus pulmones.",
                "<p>Agite el inhalador, saque el aire, cierre los labios alrededor de la boquilla, presione "
                "una vez al empezar a respirar lento y profundo, y aguante la respiración diez segundos.</p>"
                "<p>Lleve siempre su inhalador de rescate y avísenos si lo necesita más de dos veces por "
                "semana.</p>",
                "https://video.example.org/demo/inhaler-technique-es",
            ),
        },
    },
}

TEMPLATES = {
    ("en", "sms"): (
        "",
        "{{ clinic_name }}: {{ first_name }}, your care team shared something to read about what to expect: "
        "{{ education_link }}",
    ),
    ("es", "sms"): (
        "",
        "{{ clinic_name }}: {{ first_name }}, su equipo de atención le envía información sobre qué esperar: "
        "{{ education_link }}",
    ),
    ("en", "email"): (
        "Information from {{ clinic_name }}",
        "Dear {{ first_name }},\n\nYour care team at {{ clinic_name }} shared something to read about what to "
        "expect: {{ education_link }}\n\nQuestions? Call {{ clinic_phone }}.\n\nStop these emails: "
        "{{ unsubscribe_link }}",
    ),
    ("es", "email"): (
        "Información de {{ clinic_name }}",
        "Estimado/a {{ first_name }}:\n\nSu equipo de atención de {{ clinic_name }} le envía información sobre "
        "qué esperar: {{ education_link }}\n\n¿Preguntas? Llame al {{ clinic_phone }}.\n\nNo recibir más correos: "
        "{{ unsubscribe_link }}",
    ),
}
